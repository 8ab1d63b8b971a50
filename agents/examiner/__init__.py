"""The examiner agent (certification reviews)."""
