"""The central hub: ingest of store aggregates. Shares only the wire protocol with sync."""
