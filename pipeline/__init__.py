"""The end-to-end pipeline on the embedded tiny model: `socratic demo` (what `make demo` runs)."""
