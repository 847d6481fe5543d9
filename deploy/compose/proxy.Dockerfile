# The proxy role of the compose lab: sqlproxyd (:8066, admin :9066) and checkd
# (:48700) side by side. Binaries are staged into build/bin by up.sh (from
# target/release or target/debug); configs are mounted from config/.
FROM hastack-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q curl mariadb-client \
 && rm -rf /var/lib/apt/lists/*
COPY build/bin/sqlproxyd build/bin/checkd /usr/local/bin/
COPY run-pair.sh /usr/local/bin/run-pair
VOLUME /var/lib/sqlproxyd
EXPOSE 8066 9066 48700
ENTRYPOINT ["/usr/local/bin/run-pair", "sqlproxyd", "checkd"]
