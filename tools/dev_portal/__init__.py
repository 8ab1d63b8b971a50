"""Developer portal (roadmap step 2): sign-up, email verification, invitations, key rotation, docs, versioning."""
