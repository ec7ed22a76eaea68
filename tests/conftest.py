import torch

# Two cores, two pytest workers: one torch thread each avoids oversubscription.
torch.set_num_threads(1)
