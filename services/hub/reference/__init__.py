"""Reference data shared by contract: policy and catalogue documents, validated on load.

Like the Avro schemas, these formats are a contract between the publisher (`hub reference
load`) and the settle-at-treatment service; this package holds only their models and parsers.
"""
