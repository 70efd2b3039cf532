"""mailfleet worker --processes N: the parent, its children and the group's one health port."""
