"""Electrocardiograms: readers of cart formats, conversion to DICOM waveforms, measurements,
rendering on ECG paper, and the records specialists confirm."""
