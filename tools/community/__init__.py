"""Community activation (roadmap step 9): Partner Network page, early access, announcements, launch checklist."""
