"""Data: sources that yield host-local batches {"image": uint8 [B, H, W, C], "label": int32 [B]},
and on-device augmentations (augment.py)."""
