# The db role of the compose lab: one MariaDB server (Debian's mariadb-server,
# 10.11 on bookworm); db-entrypoint.sh sets up GTID replication on first start.
FROM hastack-base:bookworm
RUN apt-get update -q \
 && apt-get install -y -q mariadb-server mariadb-client \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/*
COPY db-entrypoint.sh /usr/local/bin/db-entrypoint
COPY db-health.sh /usr/local/bin/db-health
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["/usr/local/bin/db-entrypoint"]
