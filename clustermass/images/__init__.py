"""Image access: the ImageSource interface, SAS-over-HTTP / local-mirror / mock sources, cutouts, store."""
