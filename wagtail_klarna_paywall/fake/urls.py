app_name = "fake_payway"
urlpatterns: list = []
