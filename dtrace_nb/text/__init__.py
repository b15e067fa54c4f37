"""DTrace's text output, pure functions of decoded data: trace records, printf and printa,
aggregations and their histograms, and dtrace(1)'s own messages. Nothing here reads the
kernel; symbols come in as lookups (see text.printf.SymbolLookup)."""
