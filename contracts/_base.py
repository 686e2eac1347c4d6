from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of every body on the bus: immutable, and strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
