"""The lab: a XenServer pool on one Linux machine (see README.md, "The lab")."""
