"""Where bytes live: a setting read as a local path or an `s3://` location (`locations`), and the
object-store client with its one domain error (`objects`). Used by the model repository and the
dataset store alike; it knows nothing of models or datasets."""
