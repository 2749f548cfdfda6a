"""Wafer-map pattern intelligence, the pure part: signatures (raster, embedding, WM-811K
label with confidence and evidence), the classifier and its training, WM-811K JSON Lines
reading and the `failmap patterns evaluate` figures. No Dagster here."""
