# The lb role of the compose lab: lbd (:3306, stats :48800) and vrrpd floating
# the VIP (the service needs cap_add NET_ADMIN, NET_RAW). Binaries are staged
# into build/bin by up.sh; configs are mounted from config/.
FROM hastack-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q curl \
 && rm -rf /var/lib/apt/lists/*
COPY build/bin/lbd build/bin/vrrpd /usr/local/bin/
COPY run-pair.sh /usr/local/bin/run-pair
EXPOSE 3306 48800
ENTRYPOINT ["/usr/local/bin/run-pair", "lbd", "vrrpd"]
