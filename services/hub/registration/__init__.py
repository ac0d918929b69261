"""registration: enrolments and off-site filings from home bureaus, and the reference-data publisher."""
