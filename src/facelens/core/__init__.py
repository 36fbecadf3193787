"""One photo: decoding, the pipeline of models, matching against a gallery, drawing."""
