#!/usr/bin/env python3
"""Writes crates/proto/src/sql/builtins.txt from a running MariaDB.

Usage: builtins.py SOCKET > crates/proto/src/sql/builtins.txt

Every name MariaDB knows as a keyword or function (information_schema
KEYWORDS and SQL_FUNCTIONS, the help tables, and spatial names the server
registers elsewhere) is called as NAME(...), NAME (...) and `NAME`(...) with
0 to 3 arguments in an empty schema. A form where no call resolves to a
stored function (errors 1305/1630) is one where a stored function of that
name cannot be reached: the classifier may take it for the built-in. The
test classifier_mariadb::builtin_functions_are_builtins_on_mariadb checks
the file against the server in CI.
"""
import re
import sys

import pymysql

SPATIAL = """ST_X ST_Y ST_ASTEXT ST_ASBINARY ST_ASWKB ST_ASWKT ST_GEOMFROMTEXT
ST_GEOMFROMWKB ST_POINTFROMTEXT ST_POINTFROMWKB ST_LINEFROMTEXT ST_LINEFROMWKB
ST_POLYFROMTEXT ST_POLYFROMWKB ST_MPOINTFROMTEXT ST_MLINEFROMTEXT ST_MPOLYFROMTEXT
ST_GEOMCOLLFROMTEXT ST_DISTANCE ST_DISTANCE_SPHERE ST_CONTAINS ST_WITHIN
ST_INTERSECTS ST_BUFFER ST_AREA ST_LENGTH ST_CENTROID ST_ENVELOPE ST_SRID
ST_ISEMPTY ST_ISVALID ST_NUMPOINTS ST_POINTN ST_STARTPOINT ST_ENDPOINT ST_UNION
ST_DIFFERENCE ST_INTERSECTION ST_SYMDIFFERENCE ST_EQUALS ST_DISJOINT ST_TOUCHES
ST_CROSSES ST_OVERLAPS ST_RELATE ST_BOUNDARY ST_CONVEXHULL ST_DIMENSION
ST_EXTERIORRING ST_INTERIORRINGN ST_NUMINTERIORRINGS ST_GEOMETRYN
ST_NUMGEOMETRIES ST_GEOMETRYTYPE ST_ISCLOSED ST_ISRING ST_ISSIMPLE ST_ASGEOJSON
ST_GEOMFROMGEOJSON ST_POINTONSURFACE ST_SIMPLIFY ST_VALIDATE ST_LATFROMGEOHASH
ST_LONGFROMGEOHASH ST_GEOHASH ASTEXT ASBINARY ASWKT ASWKB GEOMFROMTEXT
GEOMFROMWKB POINTFROMTEXT X Y AREA GLENGTH CENTROID ENVELOPE SRID ISEMPTY
ISSIMPLE NUMPOINTS POINTN STARTPOINT ENDPOINT DIMENSION GEOMETRYTYPE MBRCONTAINS
MBRWITHIN MBRINTERSECTS MBREQUALS MBRDISJOINT MBROVERLAPS MBRTOUCHES MBRCOVERS
MBRCOVEREDBY CONTAINS WITHIN INTERSECTS CROSSES TOUCHES OVERLAPS DISJOINT EQUALS
BUFFER CONVEXHULL BOUNDARY POINT LINESTRING POLYGON MULTIPOINT MULTILINESTRING
MULTIPOLYGON GEOMETRYCOLLECTION COLUMN_CREATE COLUMN_ADD COLUMN_DELETE
COLUMN_GET LASTVAL NEXTVAL SETVAL VALUE DEFAULT EXISTS ANY ALL SOME ROW MATCH
CAST CONVERT INTERVAL CHAR IF LEFT RIGHT INSERT REPLACE""".split()


def main():
    conn = pymysql.connect(unix_socket=sys.argv[1], user="root", autocommit=True)
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS builtins_probe")
    cur.execute("USE builtins_probe")
    names = set(SPATIAL)
    for q in (
        "SELECT word FROM information_schema.KEYWORDS",
        "SELECT function FROM information_schema.SQL_FUNCTIONS",
        "SELECT name FROM mysql.help_topic",
    ):
        cur.execute(q)
        names |= {n.upper() for (n,) in cur.fetchall() if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)}

    def reaches_stored(sql):
        try:
            cur.execute(sql)
            cur.fetchall()
        except pymysql.err.MySQLError as e:
            return e.args[0] in (1305, 1630)
        return False

    cur.execute("SELECT VERSION()")
    (version,) = cur.fetchone()
    print("# MariaDB's built-in function names, and where a call of each cannot reach a")
    print("# stored function: a = NAME( with no space, s = NAME (1) with a space,")
    print("# q = `NAME`(1) quoted. Any other NAME( is taken for a stored-function call.")
    print(f"# Made by integration-tests/scripts/builtins.py on MariaDB {version.split('-')[0]}; the")
    print("# classifier_mariadb test checks every line against the server in CI.")
    for name in sorted(names):
        flags = ""
        for letter, form in (("a", "{}("), ("s", "{} ("), ("q", "`{}`(")):
            call = form.format(name)
            ok = not any(reaches_stored(f"SELECT {call}{args})") for args in ("", "1", "1,2", "1,2,3"))
            flags += letter if ok else "-"
        if flags != "---":
            print(f"{name} {flags}")
    cur.execute("DROP DATABASE builtins_probe")


if __name__ == "__main__":
    main()
