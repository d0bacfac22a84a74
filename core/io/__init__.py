"""Reading images and masks robustly; atomic writes."""
