"""What the command-line tools do: load models, evaluate, export, predict, summarise, benchmark."""
