"""The LLP data layer: the official-layout reader (llp), the synthetic generator (synth), packing (pack)."""
