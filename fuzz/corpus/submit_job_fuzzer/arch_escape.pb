
"[model]
arch = "../../etc/passwd"
