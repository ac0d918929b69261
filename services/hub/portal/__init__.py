"""The bureau portal (办事大厅 for a regional bureau's finance and audit office): a fourth
deployable that owns no business tables. It signs people in, keeps its own users, sessions,
maker-checker recommendations and audit trail, and calls the clearing, settlement and
registration services' bureau and operator APIs as the signed-in person's bureau."""
