-- Runs once, when the PostgreSQL data volume is first initialised (docker-entrypoint-initdb.d).
--
-- Huizhen connects as a role without superuser rights, so that the audit trail's triggers and
-- revoked privileges bind it. The role owns its database, so it can run the migrations.
-- The password comes from HUIZHEN_DB_PASSWORD in the PostgreSQL container's environment.

\getenv huizhen_password HUIZHEN_DB_PASSWORD

CREATE ROLE huizhen LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'huizhen_password';
CREATE DATABASE huizhen OWNER huizhen;
REVOKE ALL ON DATABASE huizhen FROM PUBLIC;
