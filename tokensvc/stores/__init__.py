"""Token stores: the database (source of truth) and the tiers that wrap it."""
