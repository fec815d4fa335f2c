"""The face service: speech -> 30 fps ARKit blendshapes plus head and eye channels."""
