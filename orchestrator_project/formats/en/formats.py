# Operators read times against logs, events and each other: to the second, in ISO order, with the zone.
# English's own "Dec. 7, 2026, 9:40 p.m." gave every event of a task the same minute.
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
