"""inerf.pixelnerf"""
