"""Reports: one module per output format (text, csv, json, png)."""
