"""pytest plugin for sockfake (fixtures arrive with the simulated network)."""
