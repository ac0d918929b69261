"""What operators watch: consumer lag judged by trend."""
