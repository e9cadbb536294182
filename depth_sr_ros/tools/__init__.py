"""Developer tools: demo, player, live demo, soak, benchmark, DDS check."""
