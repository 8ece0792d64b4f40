"""Security at Baton's boundaries: PII masking, keys and encryption."""
