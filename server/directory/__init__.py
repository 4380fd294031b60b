"""The directory: accounts, appliances and consultations, kept in the database (O1, O2)."""
