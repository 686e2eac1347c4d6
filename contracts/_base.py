from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of the bodies services send: immutable, strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Published(BaseModel):
    """Base of what the worker publishes (replies, events).

    Readers ignore fields they do not know, so that a newer worker may add fields
    without breaking older clients.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
