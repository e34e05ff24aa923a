"""Generated NAS-Bench-101 model files: the examples and golden files, made by `nbcompile compile`."""
