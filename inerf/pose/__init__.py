"""inerf.pose"""
