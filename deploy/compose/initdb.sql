-- One database per service: no service reads another's tables.
CREATE DATABASE hub_registration;
CREATE DATABASE hub_settlement;
CREATE DATABASE hub_clearing;
