//! fail2ban's own filter files (`/etc/fail2ban/filter.d/*.conf`), read as they
//! are: includes, interpolation, tags, `prefregex`, options and date patterns.
