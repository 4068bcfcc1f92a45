"""Training stage: config, tokenisation + loss masks + packing, backends (unsloth | hf), train, export."""
