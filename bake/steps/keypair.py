"""A temporary ed25519 key pair: generated in memory, imported, deleted at the end."""

from __future__ import annotations

import io

from bake.lean_paramiko import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bake import resources, tags
from bake.iam import refusal
from bake.steps.base import BuildState


def generate_ed25519_pem() -> tuple[paramiko.PKey, str, str]:
    """(private key for paramiko, OpenSSH public key line, OpenSSH private key text), in memory.
    The text reaches a disk only when ``build --keep-on-failure`` leaves a failed builder."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), public.decode(), pem


def generate_ed25519() -> tuple[paramiko.PKey, str]:
    """(private key for paramiko, OpenSSH public key line). The private key never hits a disk."""
    pkey, public, _ = generate_ed25519_pem()
    return pkey, public


class StepKeyPair:
    name = "key-pair"
    title = "creating a temporary key pair"

    def run(self, st: BuildState) -> None:
        pkey, public, pem = generate_ed25519_pem()
        st.private_key = pkey
        st.private_key_pem = pem if st.run.keep_on_failure else None
        # The name is ours, so it is recorded before the call: an interrupt mid-call is undone.
        st.key_name = f"bake-{st.plan.pool.name}-{st.run.id}"
        try:
            self._import(st, public)
        except Exception as e:
            if refusal.message(e):
                # Refused: nothing was made, and the undo would only be refused too (a false
                # "cleanup left resources behind"). A duplicate name, by contrast, may be ours.
                st.key_name = None
            raise

    def _import(self, st: BuildState, public: str) -> None:
        st.ec2.import_key_pair(
            KeyName=st.key_name,
            PublicKeyMaterial=public.encode(),
            TagSpecifications=[
                {
                    "ResourceType": "key-pair",
                    "Tags": tags.as_aws(tags.run_tags(st.run.id, st.plan.pool.name, "key-pair", st.run.created_at)),
                }
            ],
        )

    def cleanup(self, st: BuildState) -> None:
        if not st.key_name:
            return
        resources.delete_key_pair(st.ec2, st.key_name)
        st.emit("cleanup", f"deleted key pair {st.key_name}", step=self.name)
