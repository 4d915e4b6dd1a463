"""What a job does to pictures: imagine (with ControlNet), vary and inpaint (masks), outpaint,
upscale (tiled), seamless tiling and progress previews. Each takes a loaded model and a spec."""
