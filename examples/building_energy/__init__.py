"""Example: an hourly building energy model driven by synthetic typical-year climates."""
