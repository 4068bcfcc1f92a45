"""`socratic bench`: gateway overhead, data pipeline and packing, generator concurrency, training
throughput. Each benchmark prints a table and writes JSON with its figures, the machine, the
library versions and the command line."""
