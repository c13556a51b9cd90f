"""inerf.eval"""
