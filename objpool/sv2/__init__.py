"""Stratum V2 buffers and framing on pooled memory."""
