"""Who may see and change which patient's records (R14): rules, grants, break-glass."""
