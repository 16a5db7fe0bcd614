"""cloud/uplink/rows.py: the JSON columns of a reading row are encoded, for COPY, exactly as
``json.JSONEncoder(separators=(",", ":")).encode`` would (the batch reuses one C encoder)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.uplink import rows

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSON, max_size=6))
def test_the_batch_encoder_writes_what_the_json_encoder_writes(values: list[object]) -> None:
    encode = rows._encoder()
    for value in values:  # one encoder for many values, as a batch uses it
        assert encode(value) == rows.encode_json(value)
