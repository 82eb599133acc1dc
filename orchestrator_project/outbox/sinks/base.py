class SinkUnavailable(Exception):
    """The broker did not take the batch: nothing was acknowledged."""
