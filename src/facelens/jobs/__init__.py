"""Many photos, one gallery: batches, enrolment, the model move, thumbnails, review,
calibration and evaluation."""
