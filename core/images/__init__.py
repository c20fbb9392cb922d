"""Images in: readers for raster, DICOM and NIfTI files, safe archive unpacking and the image dataset."""
