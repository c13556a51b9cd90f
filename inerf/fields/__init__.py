"""inerf.fields"""
