"""Sans-I/O SMS pieces: the GSM 7-bit alphabet, PDUs (TS 23.040) and the AT command dialogue of
a modem in PDU mode (TS 27.005). Nothing here touches a port or a clock."""
