"""Governance: provenance records, signing and verifying results (Ed25519 keys, in-toto Statement v1
inside a DSSE envelope: :mod:`attnscope.governance.signing`), and privacy (masking personal data,
differential privacy). Nothing here imports a model, torch or the rendering layers."""
